"""`python -m routing`: run one routing process (replicas share the `routing` consumer group)."""

from routing.app import create_app
from routing.settings import RoutingSettings
from services import serve
from services.production import settings_or_exit

settings = settings_or_exit(RoutingSettings)
serve(create_app(settings), settings)
