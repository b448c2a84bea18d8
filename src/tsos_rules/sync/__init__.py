"""The sync ⑤: read a CRM incrementally, judge, plan actions, write them back, remember state.

``settings`` types the ``[sync]``, ``[state]`` and ``[connector]`` tables; ``job`` runs one sync;
``planner`` turns findings into actions; ``state`` is the store (with its lock and schema);
``summary`` is what a run reports.
"""
