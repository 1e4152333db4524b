import re
import subprocess
import sys


def test_engine_demo_trains_and_its_loss_falls():
    result = subprocess.run(
        [sys.executable, "-m", "minilucid", "--epochs", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    losses = [float(v) for v in re.findall(r"epoch \d+: loss ([0-9.]+)", result.stdout)]
    assert len(losses) == 4
    assert losses[-1] < losses[0] / 3, result.stdout
    accuracy = float(re.search(r"held-out accuracy ([0-9.]+)%", result.stdout).group(1))
    assert accuracy > 90, result.stdout
