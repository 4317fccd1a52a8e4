"""Progress bars: drawn only when asked for, and never under TQDM_DISABLE, however late it is set."""

import torch  # noqa: F401  (imports tqdm, which reads TQDM_DISABLE only then)

from implicitrank.progress import progress_bar, progress_enabled


def test_tqdm_disable_set_after_tqdm_was_imported_still_turns_every_bar_off(monkeypatch):
    """``reproduce --no-progress`` sets TQDM_DISABLE after torch has imported tqdm, which reads it once, at import:
    the bars were drawn anyway."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not progress_enabled() and progress_bar(10) is None
    monkeypatch.setenv("TQDM_DISABLE", "0")
    bar = progress_bar(10)
    assert progress_enabled() and bar is not None and not bar.disable
    bar.close()
    assert not progress_enabled(False) and progress_bar(10, enabled=False) is None
