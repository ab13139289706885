"""Sales service: leads, conversion, pipelines, opportunities, products, quotes, orders, tasks, campaigns."""
