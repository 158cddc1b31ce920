"""The spec is documented once, in its field descriptions: `dynia schema` gives editors the
tooltips, and the README's key table is exactly what those descriptions say."""
from __future__ import annotations

from pathlib import Path

from dynia.spec.model import ClusterSpec, json_schema, key_table

README = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
START, END = "<!-- spec keys: generated from dynia/spec/model.py (tests/unit/test_spec_docs.py) -->\n", "<!-- end of spec keys -->"


def test_readme_key_table_is_the_one_the_field_descriptions_make():
    text = README.read_text()
    table = text.split(START, 1)[1].split(END, 1)[0]
    assert table == key_table(), "regenerate the README table: python -c 'from dynia.spec.model import key_table; print(key_table())'"


def test_every_field_of_every_model_has_a_description_in_the_schema():
    schema = json_schema()
    models = [schema, *schema["$defs"].values()]
    missing = [f"{m.get('title')}.{name}" for m in models for name, prop in m.get("properties", {}).items()
               if not prop.get("description")]
    assert missing == []
    assert set(schema["properties"]) == set(ClusterSpec.model_fields)
