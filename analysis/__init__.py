"""What a search found: read experiment directories, compute fronts and hypervolumes, plot, report.

Works from files alone (no running Ray). The library arrives with the analysis issue (issue 5).
"""
