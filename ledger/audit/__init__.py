"""Tamper evidence for the ledger (contract §6).

`canonical` turns a §3 entry into RFC 8785 (JCS) bytes; `merkle` hashes those bytes into an
RFC 6962 Merkle log and proves inclusion and consistency. Both import the standard library and
`rfc8785` only.
"""
