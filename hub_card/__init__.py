"""Hugging Face Hub packaging for charrnn: model cards, one model repo per trained variant, the demo Space."""
