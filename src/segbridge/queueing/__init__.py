"""The job queue of a multi-machine install: procrastinate on segbridge's own PostgreSQL.

With PostgreSQL, every started run becomes a procrastinate job (``jobs.JobQueue``); ``segbridge
worker`` processes (and the server, unless ``server_executes_runs`` is off) execute them
(``worker.QueueWorker``). With SQLite none of this is used: runs stay in-process
(``runs.queue.RunQueue``).

- ``app``: the procrastinate App and connector built from the runtime's database URL, the
  task names and queues.
- ``jobs``: a run's job (its locks), inserted in the transaction that starts the run, and
  the jobs of runs as the queue holds them.
- ``handover``: runs passing between workers: taken over from a dead one, given back (queued
  again) by one stopping.
- ``worker``: the worker: executes runs, the periodic ticks (schedule, take-over), graceful
  give-back on SIGTERM.
"""
