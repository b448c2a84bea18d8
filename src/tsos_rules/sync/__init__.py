"""The sync ⑤: read a CRM incrementally, judge, plan actions, write them back, remember state.

``job`` runs one sync; ``planner`` turns findings into actions; ``state`` is the store.
"""
