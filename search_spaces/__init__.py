"""What a search explores: Optuna define-by-run spaces over curricula, and their named presets.

Depends on optuna only. The spaces and presets arrive with the search itself (issue 4).
"""
