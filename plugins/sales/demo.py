"""Demo quarter of the sales plugin (placeholder until written)."""


def create_demo_sales() -> None:
    return None
