"""The failure suite's machinery (``tests/test_chaos_*.py``, ``make chaos``), by job.

* ``figures``: ``Figures`` / ``record_figures`` / ``scaled`` (CHAOS_SCALE), ``.chaos-results.json``;
* ``plugin``: the fixtures (``chaos_model_dir``, ``chaos_predictor``, ``chaos_spawner``) and the
  end-of-session table; registered with ``pytest_plugins`` in ``tests/conftest.py``;
* ``models``: an untrained but servable model folder (CHAOS_MODEL=untrained);
* ``tickets``: good, marked and hostile payloads;
* ``producing`` / ``reading``: input with where it landed; outputs counted by key, ``tally``,
  committed offsets and the "commit never past an output" check;
* ``service``: ``python -m consumer`` as a child process, or a service on a thread;
* ``zygote``: the fork server that starts ``python -m consumer`` in ~1 s (CHAOS_SPAWN=exec
  exec's a fresh interpreter instead);
* ``broker``: ``PrivateBroker``, a second broker for the restart scenarios;
* ``readme``: the README's Reliability table, from ``.chaos-results.json``.

Knobs: CHAOS_SCALE (sizes), CHAOS_SEED (replay), CHAOS_MODEL=untrained (skip training),
CHAOS_SPAWN=exec, CHAOS_TRAIN=1 / CHAOS_BENCH=1 (the long-only tests), CHAOS_RESULTS (path).
Test modules import plain helpers from these modules; fixtures come from the plugin.
"""
