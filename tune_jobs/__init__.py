"""How searches run: job specs, Ray Tune orchestration, schedulers and the ``cusp-tune`` CLI."""
