"""`make bench` / `python -m bench`: the system's figures on the genuine broker and mongod, each
next to a baseline measured in the same run, written to reports/bench.md and reports/bench.json.

- `stats`, `report`: the arithmetic and the markdown table (pure, unit-tested);
- `workload`: the requests, JSON bodies and roster the figures use;
- `harness`: topic prefixes and databases of one run, processes, producing, watching outputs;
- `figures`: the measurements;
- `raw_routing`, `minimal_intake`: the baselines, run as processes of their own like the services;
- `limit_loop`: routing's physical limit (raw Kafka and bulk MongoDB writes of routing's own
  documents, no logic), a process too; `batch_sizes`: the pipeline per batch size and its chart;
  `profiling`: py-spy on routing's hot path; `memory`: peak RSS per service; `targets`: issue 15's
  targets against one run's figures.
"""
