"""Runs every `check_*` function of a check script and prints one summary line.

The Rust integration tests run these scripts against the real gateway and read the exit code
and the `N passed, N failed` line.
"""
import traceback


def run_checks(namespace, label):
    """Runs the `check_*` callables in `namespace` in name order; returns the exit code."""
    checks = [v for k, v in sorted(namespace.items()) if k.startswith("check_") and callable(v)]
    passed = failed = 0
    for check in checks:
        try:
            check()
            passed += 1
            print(f"ok   {check.__name__}")
        except Exception:  # noqa: BLE001 - report every failure, run every check
            failed += 1
            print(f"FAIL {check.__name__}")
            traceback.print_exc()
    print(f"{label}: {passed} passed, {failed} failed")
    return 1 if failed else 0
