#!/usr/bin/env python3
"""Reduces a full `bulwark demo` run's report.json to docs/case-study.json (the figures docs/case-study.md
quotes): summary, timing, stage times and the case-study section's detection, attack and lineage tables.

usage: case-study-summary.py DEMO_DIR SOURCE_TEXT [TIME_JSON] > docs/case-study.json
TIME_JSON: optional {"wallSeconds", "userSeconds", "systemSeconds", "maxRssKiB"} from /usr/bin/time.
"""
import json
import sys

demo, source = sys.argv[1], sys.argv[2]
r = json.load(open(f"{demo}/report.json"))
cs = next(s for s in r["sections"] if s["id"] == "case-study")
tables = [b for b in cs["blocks"] if b["kind"] == "table"]
quality = next(t for t in tables if t["columns"][0] == "model")
attacks = next(t for t in tables if t["columns"][:2] == ["attack", "stopped by"])
lineage = next(t for t in tables if t["columns"][0] == "depth")
out = {
    "source": source,
    "generatedAt": r["generatedAt"],
    "bulwarkVersion": r["bulwarkVersion"],
    "options": r["options"],
    "timing": r["timing"],
}
if len(sys.argv) > 3:
    t = json.load(open(sys.argv[3]))
    t["measuredWith"] = "/usr/bin/time"
    out["processTime"] = t
out["stageSeconds"] = {s["id"]: round(s["seconds"], 2) for s in r["sections"] if "seconds" in s}
out["summary"] = r["summary"]
out["detectionQuality"] = {"caption": quality.get("caption", ""), "columns": quality["columns"], "rows": quality["rows"]}
out["attacks"] = attacks["rows"]
out["lineage"] = lineage["rows"]
out["lineageColumns"] = lineage["columns"]
json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
print()
