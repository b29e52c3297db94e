"""The check-and-report helper the Python e2e clients share: one line per check, then a
RESULT line that run.sh counts."""

from __future__ import annotations

import traceback
from typing import Any


class Checks:
    def __init__(self, name: str) -> None:
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, title: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"  ok   {title}")
        else:
            self.failed += 1
            print(f"  FAIL {title}" + ("\n       " + detail.replace("\n", "\n       ") if detail else ""))
        return ok

    def equal(self, title: str, actual: Any, expected: Any) -> bool:
        return self.check(title, actual == expected, f"expected {expected!r}\ngot      {actual!r}")

    def failure(self, title: str, error: BaseException) -> None:
        self.check(title, False, "threw " + "".join(traceback.format_exception(error)).rstrip())

    def finish(self) -> int:
        print(f"RESULT {self.name} passed={self.passed} failed={self.failed}")
        return 0 if self.failed == 0 and self.passed > 0 else 1
