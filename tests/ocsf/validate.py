#!/usr/bin/env python3
"""Validates every golden event (tests/golden/**/*.json) with an independent OCSF validator:
py-ocsf-models, the pydantic models of OCSF maintained by Prowler (pinned in scripts/test).

py-ocsf-models 0.10.0 models these classes of the ones siemgate emits: Detection Finding (2004)
and the Base Event (0, whose attributes every class shares). Authentication (3002), Account
Change (3001) and API Activity (6003) have no model there; their events are checked against
the common Base Event attributes here, and against the OCSF 1.3.0 schema subset in
tests/ocsf/ocsf-1.3.0-subset.json by tests/it/ocsf_schema.rs.

Events are validated as JSON in pydantic's strict mode (no type coercion: "5" is not 5).
Usage: validate.py [GOLDEN_DIR]; exits 1 and names every refusal, 0 when all pass.
"""

import json
import pathlib
import sys

try:
    from py_ocsf_models.events.base_event import BaseEvent
    from py_ocsf_models.events.findings.detection_finding import DetectionFinding
except ImportError as e:  # scripts/test installs it; say so rather than pass in silence
    sys.exit(f"py-ocsf-models is not installed ({e}): pip install -r tests/ocsf/requirements.txt")

MODELS = {2004: DetectionFinding}


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                        pathlib.Path(__file__).resolve().parent.parent / "golden")
    files = sorted(root.rglob("*.json"))
    if not files:
        print(f"no golden files under {root}", file=sys.stderr)
        return 1
    checked = {}
    failures = []
    for f in files:
        case = json.loads(f.read_text())
        for i, event in enumerate(case.get("events") or []):
            cls = event.get("class_uid")
            model = MODELS.get(cls, BaseEvent)
            checked[model.__name__] = checked.get(model.__name__, 0) + 1
            try:
                model.model_validate_json(json.dumps(event))
            except Exception as e:  # pydantic.ValidationError, with every refusal listed
                failures.append(f"{f.relative_to(root)} event {i} (class {cls}) as {model.__name__}: {e}")
    for line in failures:
        print(line, file=sys.stderr)
    summary = ", ".join(f"{n} as {m}" for m, n in sorted(checked.items()))
    print(f"py-ocsf-models: {len(files)} golden files, events validated: {summary}; "
          f"{len(failures)} refused")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
