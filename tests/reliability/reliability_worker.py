"""Runs the isolated rows of the bad-input table in this process, one JSON line per row.

    python reliability_worker.py TMPDIR ID [ID ...]

Before each row it prints {"start": id}, so a crash (a signal, an abort in native code) shows which
row was running; after it {"id", "raised": [class names] or null, "message"}. Setting
KCOMPILE_TEST_ABORT_AT=ID aborts at that row (the harness's own test).
"""
import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_cases import CASES, Ctx, run_case  # noqa: E402


def main(tmp: str, ids: list) -> None:
    warnings.simplefilter("ignore")
    ctx = Ctx(Path(tmp))
    by_id = {c.id: c for c in CASES}
    for case_id in ids:
        print(json.dumps({"start": case_id}), flush=True)
        if os.environ.get("KCOMPILE_TEST_ABORT_AT") == case_id:   # how the harness test fakes a native crash
            os.abort()
        result = run_case(by_id[case_id], ctx)
        raised, message = result if result else (None, None)
        print(json.dumps({"id": case_id, "raised": raised, "message": message}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
