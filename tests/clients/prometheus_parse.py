"""Parses a Prometheus exposition from stdin with the prometheus_client package's own parsers,
for tests/it/metrics.rs: `text` (the Prometheus text format 0.0.4) or `openmetrics` (the strict
OpenMetrics 1.0 parser). Prints one JSON object: the families, each with its type and samples.
A text the parser refuses makes it exit non-zero with the parser's error on stderr.

    python prometheus_parse.py text|openmetrics < exposition
"""

import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families


def main():
    parse = {"text": text_families, "openmetrics": openmetrics_families}[sys.argv[1]]
    families = []
    for family in parse(sys.stdin.read()):
        samples = []
        for sample in family.samples:
            value = sample.value
            # JSON has no infinities; the tests compare finite values only.
            samples.append({"name": sample.name, "labels": sample.labels, "value": value if math.isfinite(value) else None})
        families.append({"name": family.name, "type": family.type, "samples": samples})
    json.dump({"families": families}, sys.stdout)


if __name__ == "__main__":
    main()
