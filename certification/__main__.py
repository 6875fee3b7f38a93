"""`python -m certification`: run one certification process."""

from certification.app import create_app
from certification.settings import CertificationSettings
from services import serve

settings = CertificationSettings()
serve(create_app(settings), settings)
