"""This process's resource usage, for the ``Usage`` answer to ``ReportUsage``."""

import os
import resource
import sys


def _rss_from_statm():
    # The second field of /proc/self/statm is the resident set, in pages.
    with open("/proc/self/statm", "rb") as f:
        fields = f.read().split()
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def current():
    """``(rss_bytes, cpu_ns)``: resident set size now, user plus system CPU time so far.

    RSS comes from /proc/self/statm; where there is no /proc (macOS) it is the
    peak RSS from getrusage, the closest number the system offers.
    """
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu_ns = int((ru.ru_utime + ru.ru_stime) * 1_000_000_000)
    try:
        rss = _rss_from_statm()
    except (OSError, ValueError, IndexError):
        # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
        rss = ru.ru_maxrss if sys.platform == "darwin" else ru.ru_maxrss * 1024
    return rss, cpu_ns
