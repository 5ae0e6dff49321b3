"""The shipped demonstration model: anatomy from open scans, synthetic training data, training,
held-out evaluation and the model card (tools/make_demo_model.py runs it all)."""
