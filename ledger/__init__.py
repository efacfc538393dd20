"""Selva's accounting core: serial-numbered credit blocks on a hash-chained journal.

This package never imports Flask, the marketplace, stripe or marshmallow. Its pure modules
(``canonical``, ``serials``, ``rules``, ``replay``, ``merkle``, ``checkpoint``, ``verify``)
do not import SQLAlchemy either, so the offline verifier runs with the standard library and
``cryptography`` alone. Nothing is imported here on purpose: import the module you need.
"""
