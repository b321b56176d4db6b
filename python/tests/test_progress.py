"""Progress bars: a tqdm_class gets the bytes of a push and a restore; the env var and
progress=False turn them off; a callable gets (done, total)."""

import mgreg
from mgreg import progress as progress_lib


class RecordingBar:
    instances = []

    def __init__(self, total, **kwargs):
        self.total, self.n, self.closed, self.kwargs = total, 0, False, kwargs
        RecordingBar.instances.append(self)

    def update(self, n):
        self.n += n

    def close(self):
        self.closed = True


def test_tqdm_class_ends_at_the_total(server, data, model, tmp_path, monkeypatch):
    monkeypatch.delenv("MGREG_DISABLE_PROGRESS_BARS", raising=False)
    RecordingBar.instances = []
    with mgreg.Client(server.address, tqdm_class=RecordingBar) as c:
        pushed = c.push(model, data.t2t)
        c.restore(model, tmp_path)
    push_bar, restore_bar = RecordingBar.instances
    assert push_bar.total == push_bar.n == pushed.total_bytes
    assert restore_bar.total == restore_bar.n == pushed.total_bytes
    assert push_bar.closed and restore_bar.closed and push_bar.kwargs["unit"] == "B"


def test_env_var_and_false_disable_bars_and_callables_get_bytes(server, data, model,
                                                                monkeypatch):
    RecordingBar.instances = []
    monkeypatch.setenv("MGREG_DISABLE_PROGRESS_BARS", "1")
    calls = []
    with mgreg.Client(server.address, tqdm_class=RecordingBar) as c:
        c.push(model, data.tictactoe)
        c.push(model, data.tictactoe, progress=lambda done, total: calls.append((done, total)))
    monkeypatch.delenv("MGREG_DISABLE_PROGRESS_BARS")
    with mgreg.Client(server.address, tqdm_class=RecordingBar) as c:
        c.push(model, data.tictactoe, progress=False)
    assert RecordingBar.instances == []
    assert calls and calls[-1] == (5671, 5671)
    assert isinstance(progress_lib.make(None, 10, "x"), progress_lib._Nothing)  # not a tty
