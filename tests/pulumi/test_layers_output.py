"""The `layers` output (what the next run stamps versions from, finds removed, rolls last) is
recorded only from a run whose pushes all passed. Run inside a real pulumi:pulumi:Stack under
mocks: the stack's RegisterResourceOutputs is what the engine records."""
from __future__ import annotations

import json

import pytest

from dynia.stacks import apps, infra

from .conftest import GraphMocks, is_secret

PUSH = "command:remote:Command"


def stack_outputs(mocks, phase: str) -> dict:
    """The outputs the program registered on its stack ({} if it never registered any)."""
    return mocks.created[f"dynia-shop-{phase}"].outputs


def plain(value):
    return value["value"] if is_secret(value) else value


def pushed_layers(mocks) -> dict:
    """{node: {layer: {digest, version}}} from the pushes as registered (their trigger and bundle)."""
    out: dict = {}
    for reg in mocks.created.values():
        if reg.typ != PUSH:
            continue
        stdin = plain(reg.inputs["stdin"])
        script_len, rest = stdin.encode().split(b"\n", 1)
        bundle = json.loads(rest[int(script_len):])
        out.setdefault(bundle["node"], {})[bundle["layer"]] = {
            "digest": plain(plain(reg.inputs["triggers"])[0]), "version": bundle["configVersion"]}
    return out


@pytest.mark.parametrize("module,phase", [(infra, "infra"), (apps, "apps")])
def test_a_run_whose_pushes_all_pass_records_the_layers_it_pushed(run_phase, module, phase):
    mocks = GraphMocks()
    assert run_phase(module, "shop", phase, mocks, in_stack=True) is None
    outputs = stack_outputs(mocks, phase)
    assert plain(outputs["layers"]) == pushed_layers(mocks)


@pytest.mark.parametrize("module,phase,failing", [
    (infra, "infra", "misty-owl-infra-push"),            # the last node of the roll
    (apps, "apps", "misty-owl-service-web-push"),        # the very last push of the phase
])
def test_a_failed_push_records_no_new_layers(run_phase, module, phase, failing):
    """Everything before the failed push passed, and its layers resolve early (they depend on
    the bundles only): before this fix they were recorded anyway. Now nothing is registered,
    and Pulumi keeps the last successful update's outputs."""
    mocks = GraphMocks(fail={failing})
    error = run_phase(module, "shop", phase, mocks, in_stack=True)
    assert error is not None and "health gate failed" in str(error)
    assert "layers" not in stack_outputs(mocks, phase)


def test_a_removal_whose_push_failed_stays_pending_for_the_rerun(run_phase):
    """A service removed from the spec is found through the last `layers`: when a node's
    removal push fails, the recorded layers must still name it, or the rerun never removes it
    from the nodes that were not reached."""
    first = GraphMocks()
    assert run_phase(apps, "shop", "apps", first, in_stack=True) is None
    before = plain(stack_outputs(first, "apps")["layers"])
    before["misty-owl"]["service:old"] = before["brave-panda"]["service:old"] = {"digest": "0" * 64, "version": 1}

    failed = GraphMocks(fail={"brave-panda-service-old-push"})  # the removal, on the first node
    assert run_phase(apps, "shop", "apps", failed, in_stack=True, previous_layers=before) is not None
    assert "layers" not in stack_outputs(failed, "apps")  # Pulumi keeps `before`: "old" still pending

    rerun = GraphMocks()
    assert run_phase(apps, "shop", "apps", rerun, in_stack=True, previous_layers=before) is None
    assert {"brave-panda-service-old-push", "misty-owl-service-old-push"} <= set(rerun.created)
    after = plain(stack_outputs(rerun, "apps")["layers"])
    assert all("service:old" not in layers for layers in after.values())  # removed: no longer pending
