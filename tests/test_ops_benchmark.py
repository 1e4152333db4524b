"""benchmarks/ops.py: its convolution shapes are YOLOv4's, and each weighs by its count."""

from collections import Counter

from benchmarks import ops


def test_the_benchmarked_convolutions_are_the_models_with_their_counts():
    counts = ops.conv_counts()
    assert set(counts) == set(ops.YOLOV4_CONVS)
    assert sum(counts.values()) == 110  # darknet's yolov4.cfg has 110 convolutional layers
    assert counts[(128, 128, 3, 1, 52)] == 8  # the neck's and heads' 3x3 convolutions at 52x52


def test_weighted_lines_total_each_shape_times_its_count_and_rank_the_gaps():
    small, large = (8, 8, 3, 1, 52), (16, 16, 1, 1, 13)
    times = {small: (1.0, 1.0, 3.0, 1.0), large: (1.0, 2.0, 2.0, 1.0)}  # ours fwd, torch fwd, ours/torch fwd+bwd
    lines = ops.weighted_conv_lines(times, Counter({small: 1, large: 5}))
    assert "6 convolutions" in lines[0]
    assert "forward 6.000 s against 11.000 s (0.55)" in lines[0]
    assert "forward+backward 13.000 s against 6.000 s (2.17)" in lines[0]
    # The gaps: small 2 s once, large 1 s five times: large first.
    assert lines[1].startswith("- conv 16->16 k1 s1 @13, 5 in the model") and lines[1].endswith(
        "+5.000 s against PyTorch"
    )
    assert lines[2].startswith("- conv 8->8 k3 s1 @52, 1 in the model") and "+2.000 s" in lines[2]
