import io

from trainable.config import TrainConfig
from trainable.local import warn_if_slow
from trainable.progress import Progress


def test_the_line_shows_time_left_and_a_slow_rate_per_iteration():
    meter = Progress("training", 400_000)
    assert meter.line(120, 80.0, "D 0.600") == "training:   0% 120/400000 [01:20<74:03:06,  1.50it/s] D 0.600"
    assert "2.00s/it" in meter.line(3, 6.0) and "<222:13:14" in meter.line(3, 6.0)
    assert Progress("reading").line(350, 2.0) == "reading: 350 [00:02, 175.00it/s]"


def test_a_log_gets_whole_lines_and_nothing_when_disabled():
    stream = io.StringIO()
    meter = Progress("judge", 10, stream=stream)
    meter.update(5)  # within the first interval: nothing yet
    meter.close(10, "done")
    assert stream.getvalue().count("\n") == 1 and "judge: 100% 10/10" in stream.getvalue()
    quiet = io.StringIO()
    Progress("judge", 10, stream=quiet, enabled=False).close(10)
    assert quiet.getvalue() == ""


def test_due_says_whether_the_next_update_draws():
    """The training loop reads the losses off the device (a host sync on a GPU) only when due."""
    stream = io.StringIO()
    meter = Progress("training", 10, stream=stream, log_interval=0.0)
    assert meter.due() and not Progress("training", 10, stream=stream).due()  # a log line every 10 s
    assert not Progress("training", 10, stream=stream, log_interval=0.0, enabled=False).due()
    meter.update(3, "D 0.5")
    assert stream.getvalue().count("\n") == 1


def test_the_papers_width_on_a_cpu_is_announced(capsys):
    warn_if_slow(TrainConfig())
    assert "1-2 iterations/s: 400000 iterations take about 74 h" in capsys.readouterr().err
    warn_if_slow(TrainConfig.from_dict({"g_filters": "32,16,8"}))
    assert capsys.readouterr().err == ""
