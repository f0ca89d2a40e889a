"""Analyses that read run outputs: sweep aggregation, tables, plots. No torch imports here except in task-side code."""
