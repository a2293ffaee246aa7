"""Run one command and write its wall time and peak RSS to a file: python -S spawn.py RESULT -- COMMAND...

On Linux a process's peak RSS (ru_maxrss) starts at the resident size of
the process that forked it, so the benchmark, which has imported Copier and
SQLAlchemy, cannot fork the commands it measures itself: this small
standard-library process does, and exits with the command's status.
"""

import json
import os
import subprocess
import sys
import time

result, separator, *command = sys.argv[1:]
assert separator == "--", "usage: spawn.py RESULT -- COMMAND..."
start = time.perf_counter()
process = subprocess.Popen(command)
_, status, usage = os.wait4(process.pid, 0)
elapsed = time.perf_counter() - start
with open(result, "w") as file:
    json.dump({"seconds": elapsed, "peak_rss_kib": usage.ru_maxrss}, file)
sys.exit(os.waitstatus_to_exitcode(status))
