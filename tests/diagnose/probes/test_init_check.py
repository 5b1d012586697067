from steadyval.config import load_config
from steadyval.diagnose.base import run_probes
from steadyval.diagnose.probes.init_check import InitCheck
from steadyval.findings import Severity


def test_large_normal_init_is_bad_and_default_is_not(tiny) -> None:
    bad = run_probes(tiny, load_config(sets=["preset=seed-ex2", "image_size=32", "init=normal_large"]),
                     [InitCheck()])
    assert [f.id for f in bad.findings] == ["model.bad_init"]
    assert bad.findings[0].severity == Severity.HIGH
    assert bad.findings[0].evidence["logit_std"] > 10
    for init in ("default", "kaiming"):
        ok = run_probes(tiny, load_config(sets=["preset=seed-ex2", "image_size=32", f"init={init}"]), [InitCheck()])
        assert ok.findings == [], init
