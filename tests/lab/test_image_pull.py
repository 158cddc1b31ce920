"""A deploy whose image cannot be pulled says so: the push failure, the node's degraded reason
and `status` name the image and the container engine's pull error (podman-compose's own last
line only says that a container it never created was not found)."""
from __future__ import annotations

from dynia.operations import status as S
from dynia.nodes.push_errors import push_error


IMAGE = "localhost/dynia-no-such-image:1"


def test_an_image_that_cannot_be_pulled_is_named_with_its_pull_error_in_the_push_the_marker_and_status(applied_lab):
    lc = applied_lab
    lc.cache_as_after_up()
    compose = lc.project.root / "services" / "lab-api.yml"
    compose.write_text(compose.read_text().replace("image: localhost/dynia-lab-app", f"image: {IMAGE}"))
    result = lc.roll(layers=["service:api"])
    failed = result.failure()
    assert failed is not None and failed.layer == "service:api", [(r.node, r.layer, r.reason) for r in result.results]
    prefix = f"reload service:api failed: image {IMAGE} could not be pulled: "
    assert failed.reason.startswith(prefix), failed.reason
    pull_error = failed.reason[len(prefix):]
    assert "dynia-no-such-image" in pull_error and "no container with name" not in pull_error

    # What `dynia up` says (the engine's push error, from the apply script's last stderr line).
    error = push_error(f"{failed.node}-service-api-push", failed.stderr, failed.exit_status, "lab")
    assert prefix + pull_error in error.message

    # The node keeps the reason it was rolled back for; status shows it.
    st = S.read(lc.cluster())
    assert any(p.startswith(f"{failed.node} is degraded since ") and p.endswith(prefix + pull_error)
               for p in st.problems), st.problems
    row = next(n for n in st.nodes if n.node == failed.node)
    assert row.degraded.reason == prefix + pull_error
