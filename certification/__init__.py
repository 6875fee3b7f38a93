"""Certification: carries candidates from enrolment to an exam seat and a certificate."""
