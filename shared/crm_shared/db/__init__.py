"""Persistence shared by every service: engine, unit of work, platform tables."""
