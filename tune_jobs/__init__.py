"""How searches run: job specs, Ray Tune orchestration, schedulers and the ``cusp-tune`` CLI.

The Python API is what the CLI calls::

    from tune_jobs.spec import JobSpec, load_job     # a job file (or a shipped job's name)
    from tune_jobs import runner

    spec = load_job("quickstart", {"search.trials": 4})   # or JobSpec.from_dict({...})
    outcome = runner.launch(spec)                     # SearchOutcome: trials, front, finished
    # a line per trial event, as the CLI prints (Ray Tune's own tables are off):
    # runner.launch(spec, callbacks=[ProgressLines(print, spec.metrics)])  (tune_jobs.progress)
    outcome = runner.resume(outcome.experiment_path)  # continue an interrupted search
    progress = runner.status(outcome.experiment_path) # from the files, without Ray
    job_id = runner.submit("quickstart", "http://HEAD:8265", {})  # as a Ray Job

Every mistake a user can make raises :class:`trainables.errors.UserError` with one line that
says what to change. ``launch`` and ``resume`` start a local Ray (or connect to ``address``) and
leave it running for later calls in the process; ``ray.shutdown()`` ends it.
"""
