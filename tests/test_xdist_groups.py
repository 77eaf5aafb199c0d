"""The suite's own scheduling: tests marked `xdist_group` (one local Slurm, one multi-node
Ray at a time; one JAX run) are sent to one test process as their group."""

import pytest


@pytest.mark.xdist_group("check")
def test_a_grouped_test_is_sent_as_its_group(request):
    """xdist's loadgroup keeps a group in one process by naming its tests NAME@GROUP. Under
    pytest 9.2 with xdist 3.8 the name was not taken, and the groups split silently."""
    if not request.config.getoption("loadgroup", False):
        pytest.skip("not run by xdist's loadgroup (-n 0)")
    assert request.node.nodeid.endswith("@check"), request.node.nodeid
