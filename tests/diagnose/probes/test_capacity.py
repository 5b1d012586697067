from steadyval.config import load_config
from steadyval.diagnose.base import Probe, ProbeContext, run_probes
from steadyval.diagnose.probes.capacity import Capacity
from steadyval.findings import Severity


def test_a_resnet_on_a_few_hundred_images_is_too_big(tiny) -> None:
    big = run_probes(tiny, load_config(sets=["model=resnet18", "image_size=32"]), [Capacity()])
    assert [(f.id, f.severity) for f in big.findings] == [("model.overcapacity", Severity.HIGH)]
    regularised = run_probes(tiny, load_config(sets=["model=resnet18", "image_size=32", "weight_decay=0.01",
                                                     "augment=geometric"]), [Capacity()])
    assert regularised.findings[0].severity == Severity.MEDIUM
    small = run_probes(tiny, load_config(sets=["preset=seed-ex2", "image_size=32", "width=0.25"]), [Capacity()])
    assert small.findings == []


def test_a_failing_probe_is_reported_and_the_others_run(tiny) -> None:
    class Broken(Probe):
        id = "model.bad_init"

        def run(self, ctx: ProbeContext) -> list:
            raise RuntimeError("boom")

    result = run_probes(tiny, load_config(sets=["model=resnet18", "image_size=32"]), [Broken(), Capacity()])
    assert {f.id for f in result.findings} == {"check.failed", "model.overcapacity"}
