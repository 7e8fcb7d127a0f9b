"""The audit log: one hash-chained record per administrative or operator act.

``act.py`` builds what a caller hands a script (the chain key and the act); the fragment
``lua_include/audit.lua`` writes the record in the same script as the act; ``record.py`` holds
the pure record format and chain checks shared by export, verify and the anchors.
"""
