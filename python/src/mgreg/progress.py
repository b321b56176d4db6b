"""Progress bars for long transfers: tqdm when it imports and stderr is a terminal.

`progress` arguments take None (automatic), True, False, a callable(done, total) (the C++
client's ProgressFn), and `tqdm_class` a tqdm-compatible class (as huggingface_hub does).
MGREG_DISABLE_PROGRESS_BARS=1 turns automatic bars off.
"""

import os
import sys


class _Callback:
    def __init__(self, fn, total):
        self._fn, self.total, self.n = fn, total, 0

    def update_to(self, done):
        self.n = done
        self._fn(done, self.total)

    def close(self):
        pass


class _Bar:
    def __init__(self, cls, total, desc):
        self._bar = cls(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                        leave=False)
        self.total, self.n = total, 0

    def update_to(self, done):
        if done > self.n:
            self._bar.update(done - self.n)
            self.n = done

    def close(self):
        self._bar.close()


class _Nothing:
    total = n = 0

    def update_to(self, done):
        pass

    def close(self):
        pass


def _disabled_by_env():
    return os.environ.get("MGREG_DISABLE_PROGRESS_BARS", "").strip() not in ("", "0")


def make(progress, total, desc, tqdm_class=None):
    """An object with update_to(done) and close() reporting `total` bytes.

    None: a bar unless MGREG_DISABLE_PROGRESS_BARS is set, and (without tqdm_class) only
    when stderr is a terminal and tqdm imports. True: always a bar (if tqdm imports).
    False: none. A callable: called with (done, total)."""
    if callable(progress) and not isinstance(progress, bool):
        return _Callback(progress, total)
    if progress is False:
        return _Nothing()
    if progress is None:
        if _disabled_by_env():
            return _Nothing()
        if tqdm_class is None:
            try:
                if not sys.stderr.isatty():
                    return _Nothing()
            except (AttributeError, ValueError):
                return _Nothing()
    cls = tqdm_class
    if cls is None:
        try:
            from tqdm.auto import tqdm as cls  # pylint: disable=import-outside-toplevel
        except ImportError:
            return _Nothing()
    return _Bar(cls, total, desc)
