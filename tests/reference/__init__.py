"""Minimal transcriptions of the arithmetic of other projects' code, used as known answers.

Each function states which file and lines of which project it follows. They are written from
reading that code, not copied from it, and they keep its quirks (in-order splits, a shared
n - 1, C chosen on the test half) on purpose: GenBench's paired columns are checked against them.
"""
