"""Consumer-group machinery shared by every projection.

A group process reads its topics in batches and applies each batch in one PostgreSQL
transaction together with the consumed offsets, so that after a crash the group resumes
exactly after the last committed batch.
"""
