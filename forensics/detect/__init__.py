"""The detect stage: detectors as data, loading and checking them, shared features, the runner,
suppression, incidents and the inline-test runner.
"""
