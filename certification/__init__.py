"""Certification: carries candidates from enrolment to an exam seat and a certificate.

Enrolments in paths that prepare for a certification make candidates; exam requests put them on
the certification's waitlist; when a training centre is open and a session has seats, seats are
offered in waitlist order with a deadline; an acceptance publishes `ExamScheduled`, a pass issues an
Open Badges 3.0 credential and publishes `CertificateIssued`.
"""

from certification.app import create_app
from certification.certifications import CertificationInfo, Certifications, load_certifications
from certification.credentials import build_credential, identity_hash
from certification.service import CertificationService
from certification.settings import CertificationSettings
from certification.store import CertificationError

__all__ = [
    "CertificationError",
    "CertificationInfo",
    "CertificationService",
    "CertificationSettings",
    "Certifications",
    "build_credential",
    "create_app",
    "identity_hash",
    "load_certifications",
]
