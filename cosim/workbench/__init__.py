"""The local workbench in the browser (`nmpu serve`): a study form, runs of the project's own commands in the
background, their results, plots and files, and comparisons between runs.

``app.py`` (the FastAPI routes and pages), ``db.py`` (the runs table, SQLAlchemy), ``study.py`` (a submitted study
checked into parameters, and each stage's command line), ``jobs.py`` (the runner: a queue of subprocesses of the
``nmpu`` command, at most N at once, cancel by process group), ``templates/`` (the pages, plain HTML).
"""
