"""Collect: a web app that collects preference labels from people and asks the most informative questions.

``project`` (the folder: ``project.yaml``, the database, the secret), ``store`` (the database),
``items`` (what is asked), ``labels`` (what an answer is), ``export`` (labels as rewardlab records);
the web app, active selection, agreement and interop modules build on these. Nothing heavy loads on import.
"""
