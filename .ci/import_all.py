"""Imports every module of a package; exits non-zero naming each module that fails to import.

    python .ci/import_all.py uada

CI runs it in a fresh environment after a plain `pip install -e .`, so that a module importing a
package that only the test extra brings fails CI instead of a user's first run.
"""

import importlib
import pkgutil
import sys
import traceback


def main(package_name):
    package = importlib.import_module(package_name)
    names = [package_name] + [
        info.name for info in pkgutil.walk_packages(package.__path__, prefix=package_name + ".")
    ]
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - every failure is reported, then CI fails
            failed.append(name)
            traceback.print_exc()
    print(f"imported {len(names) - len(failed)} of {len(names)} modules of {package_name}")
    if failed:
        print("failed to import: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "uada"))
