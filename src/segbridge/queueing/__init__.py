"""The job queue of a multi-machine install: procrastinate on segbridge's own PostgreSQL.

With PostgreSQL, every started run becomes a procrastinate job (``jobs.JobQueue``); ``segbridge
worker`` processes (and the server, unless ``server_executes_runs`` is off) execute them
(``worker.QueueWorker``). With SQLite none of this is used: runs stay in-process
(``runs.queue.RunQueue``).

- ``app``: the procrastinate App and connector built from the runtime's database URL, the
  task names and queues.
- ``jobs``: deferring a run's job (its locks), and reading the jobs of runs.
- ``worker``: the worker: executes runs, the periodic ticks (schedule, take-over), graceful
  give-back on SIGTERM.
"""
