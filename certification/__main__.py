"""`python -m certification`: run one certification process."""

from certification.app import create_app
from certification.settings import CertificationSettings
from services import serve
from services.production import settings_or_exit

settings = settings_or_exit(CertificationSettings)
serve(create_app(settings), settings)
