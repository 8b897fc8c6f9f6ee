"""Load content: realistic event payloads, the corrupted payloads of the data faults, and the ledger of
acknowledged writes. Pure: standard library only.
"""
