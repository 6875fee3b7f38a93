"""`python -m intake`: run one intake process."""

from intake.app import create_app
from intake.settings import IntakeSettings
from services import serve
from services.production import settings_or_exit

settings = settings_or_exit(IntakeSettings)
serve(create_app(settings), settings)
