# `python3 check_json.py FILE`: parses every line of a `--log-format json`
# log with Python's json module, checks its fields and time format, and
# prints `<level> <name> <msg as JSON>` for each.
import json, re, sys
for line in open(sys.argv[1]):
    obj = json.loads(line)
    assert set(obj) <= {"time", "level", "name", "msg"}, obj
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["time"]), obj
    print(obj["level"], obj.get("name"), json.dumps(obj["msg"]))
