"""The web channel's words in French, Dutch and English: form labels, help texts, validation
messages and the confirmation page. One flat dict per language; `text()` looks a key up.

A missing key is a programming error (`KeyError` in tests), never a silently empty label:
`tests/unit/test_web_form.py` checks that every language has every key.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas import Language, QualificationLevel
from services.helpline import reach_us

__all__ = ["LANGUAGE_NAMES", "TEXTS", "negotiate", "qualification_label", "text"]

LANGUAGE_NAMES: dict[Language, str] = {
    # Each language in its own name: someone looking for their language recognises it that way.
    Language.FR: "Français",
    Language.NL: "Nederlands",
    Language.EN: "English",
}

TEXTS: dict[Language, dict[str, str]] = {
    Language.FR: {
        "page_title": "Demander une formation — Bruxelles Formation",
        "heading": "Demander une formation",
        "intro": "Vous cherchez une formation en ligne ou un conseil ? Laissez-nous vos coordonnées : "
        "un conseiller ou une conseillère vous recontacte.",
        "language_switch": "Langue de la page",
        "section_contact": "Vos coordonnées",
        "section_request": "Votre demande",
        "section_situation": "Votre situation",
        "contact_hint": "Indiquez un numéro de téléphone, une adresse e-mail, ou les deux.",
        "optional": "facultatif",
        "name": "Nom et prénom",
        "phone": "Téléphone",
        "phone_hint": "Par exemple 0470 12 34 56",
        "email": "Adresse e-mail",
        "email_hint": "Par exemple nom@exemple.be",
        "language": "Dans quelle langue souhaitez-vous être contacté·e ?",
        "need": "De quoi avez-vous besoin ?",
        "learner_question": (
            "Je suis déjà inscrit·e à une formation et j'ai une question à son sujet (réponse dans un jour ouvrable)."
        ),
        "need_hint": "En quelques mots : la formation ou l'aide que vous cherchez.",
        "requested_course": "Formation qui vous intéresse",
        "course_unsure": "Je ne sais pas / conseillez-moi",
        "qualification_level": "Votre diplôme le plus élevé",
        "choose": "— Choisissez —",
        "has_computer": "Avez-vous un ordinateur ?",
        "has_internet": "Avez-vous Internet à la maison ?",
        "yes": "Oui",
        "no": "Non",
        "unemployed_since": "Sans emploi depuis le",
        "unemployed_since_hint": "Laissez vide si vous ne savez pas.",
        "consent_to_contact": "J'accepte d'être contacté·e par Bruxelles Formation au sujet de ma demande.",
        "privacy": "Vos coordonnées servent uniquement à traiter votre demande.",
        "submit": "Envoyer ma demande",
        "errors_title": "Votre demande n'a pas été envoyée. Corrigez ce qui suit :",
        "confirmation_title": "Merci, nous avons bien reçu votre demande",
        "reference": "Référence de votre demande",
        # No delay for a request from the web: routing promises one to callers of the 0800 line
        # only (routing/data/rules.yaml `sla`), and to learners' questions on every channel.
        "next_steps": "Un conseiller ou une conseillère va vous contacter pour parler de votre demande.",
        "next_steps_learner_question": "Notre équipe des formations en ligne (BF espaces numériques) "
        "répond à votre question dans un jour ouvrable.",
        "keep_reference": "Notez cette référence. Donnez-la si vous nous appelez.",
        "reach_us": reach_us("fr"),
        "new_request": "Faire une autre demande",
        "back_to_form": "Retour au formulaire",
        "kind_basic_skills": "Compétences de base",
        "kind_software_path": "Logiciels (parcours certifiants)",
        "kind_design_path": "Graphisme et dessin (parcours certifiants)",
        "kind_digital_skills": "Compétences numériques",
        "qualification_none": "Aucun diplôme",
        "qualification_primary": "Primaire (CEB)",
        "qualification_lower_secondary": "Secondaire inférieur",
        "qualification_upper_secondary": "Secondaire supérieur (CESS)",
        "qualification_higher": "Études supérieures",
        # Whole-request problems.
        "malformed_json": "Le corps de la requête n'est pas du JSON valide.",
        "malformed_form": "Le formulaire envoyé est illisible. Rechargez la page et réessayez.",
        "too_large": "Votre demande est trop longue (au maximum {limit} octets). Raccourcissez le texte et réessayez.",
        # The form's page says it without bytes: a person counts words, not bytes.
        "form_too_large": "Votre demande est trop longue. Raccourcissez le texte et réessayez.",
        "unsupported_media_type": "Type de contenu non accepté : envoyez {expected}.",
        "rate_limited": "Trop de demandes en peu de temps. Réessayez dans {seconds} secondes.",
        "unavailable": "Le service est momentanément indisponible et votre demande n'a pas été enregistrée. "
        "Réessayez dans quelques minutes.",
        "invalid_idempotency_key": "L'en-tête Idempotency-Key doit contenir de 1 à 255 caractères ASCII imprimables.",
        "idempotency_key_required": "L'en-tête Idempotency-Key est obligatoire : "
        "il permet de réessayer sans créer deux demandes.",
        "error_idempotency_key_reused": "Idempotency-Key réutilisée avec une autre demande.",
        "not_found": "Page introuvable.",
        "invalid_content_length": "En-tête Content-Length non valide.",
        "client_disconnected": "Le client s'est déconnecté avant la fin de l'envoi.",
        # Field problems.
        "error_required": "Ce champ est obligatoire.",
        "error_contact_required": "Indiquez un numéro de téléphone ou une adresse e-mail pour que nous puissions vous contacter.",
        "error_phone_invalid": "Ce numéro de téléphone n'est pas valide. Exemple : 0470 12 34 56 ou +32 470 12 34 56.",
        "error_email_invalid": "Cette adresse e-mail n'est pas valide. Exemple : nom@exemple.be.",
        "error_too_long": "Trop long : {max_length} caractères au maximum.",
        "error_name_url": "Indiquez seulement votre nom, sans adresse de site web ni lien.",
        "error_name_control_characters": "Ce nom contient des caractères invisibles ou de contrôle : retapez-le.",
        "captcha_failed": "La vérification anti-robot a échoué : réessayez.",
        "captcha_unavailable": "La vérification anti-robot est indisponible pour le moment : réessayez dans une minute.",
        "error_course_unknown": "Formation « {code} » inconnue. Codes valides : {codes}.",
        "error_consent_required": "Cochez la case pour accepter d'être contacté·e : sans votre accord, "
        "nous ne pouvons pas traiter votre demande.",
        "error_date_future": "Cette date est dans le futur.",
        "error_date_too_old": "Cette date est trop ancienne.",
        "error_date_invalid": "Indiquez une date valide (JJ/MM/AAAA).",
        "error_choice_invalid": "Choisissez parmi : {choices}.",
        "error_bool_invalid": "Répondez oui ou non (true ou false).",
        "error_text_expected": "Une chaîne de caractères est attendue.",
        "error_object_expected": "Un objet JSON est attendu.",
        "error_partner_invalid": "Identifiant de partenaire non valide (lettres minuscules, chiffres et tirets).",
        "error_unknown_field": "Champ inconnu.",
        "error_invalid": "Valeur non valide.",
    },
    Language.NL: {
        "page_title": "Een opleiding aanvragen — Bruxelles Formation",
        "heading": "Een opleiding aanvragen",
        "intro": "Zoekt u een online opleiding of advies? Laat uw gegevens achter: een adviseur neemt contact met u op.",
        "language_switch": "Taal van de pagina",
        "section_contact": "Uw gegevens",
        "section_request": "Uw aanvraag",
        "section_situation": "Uw situatie",
        "contact_hint": "Geef een telefoonnummer, een e-mailadres of allebei.",
        "optional": "niet verplicht",
        "name": "Voor- en achternaam",
        "phone": "Telefoon",
        "phone_hint": "Bijvoorbeeld 0470 12 34 56",
        "email": "E-mailadres",
        "email_hint": "Bijvoorbeeld naam@voorbeeld.be",
        "language": "In welke taal wilt u gecontacteerd worden?",
        "need": "Wat hebt u nodig?",
        "learner_question": ("Ik ben al ingeschreven voor een opleiding en heb er een vraag over (antwoord binnen één werkdag)."),
        "need_hint": "In een paar woorden: de opleiding of de hulp die u zoekt.",
        "requested_course": "Opleiding die u interesseert",
        "course_unsure": "Ik weet het niet / geef me advies",
        "qualification_level": "Uw hoogste diploma",
        "choose": "— Kies —",
        "has_computer": "Hebt u een computer?",
        "has_internet": "Hebt u thuis internet?",
        "yes": "Ja",
        "no": "Nee",
        "unemployed_since": "Werkzoekend sinds",
        "unemployed_since_hint": "Laat leeg als u het niet weet.",
        "consent_to_contact": "Ik ga ermee akkoord dat Bruxelles Formation contact met mij opneemt over mijn aanvraag.",
        "privacy": "Uw gegevens worden alleen gebruikt om uw aanvraag te behandelen.",
        "submit": "Mijn aanvraag versturen",
        "errors_title": "Uw aanvraag is niet verstuurd. Verbeter het volgende:",
        "confirmation_title": "Bedankt, we hebben uw aanvraag goed ontvangen",
        "reference": "Referentie van uw aanvraag",
        "next_steps": "Een adviseur neemt contact met u op om over uw aanvraag te praten.",
        "next_steps_learner_question": "Ons team voor online opleidingen (BF espaces numériques) "
        "beantwoordt uw vraag binnen één werkdag.",
        "keep_reference": "Noteer deze referentie. Geef ze door als u ons belt.",
        "reach_us": reach_us("nl"),
        "new_request": "Nog een aanvraag doen",
        "back_to_form": "Terug naar het formulier",
        "kind_basic_skills": "Basisvaardigheden",
        "kind_software_path": "Software (trajecten met certificaat)",
        "kind_design_path": "Grafisch ontwerp en tekenen (trajecten met certificaat)",
        "kind_digital_skills": "Digitale vaardigheden",
        "qualification_none": "Geen diploma",
        "qualification_primary": "Lager onderwijs (getuigschrift basisonderwijs)",
        "qualification_lower_secondary": "Lager secundair onderwijs",
        "qualification_upper_secondary": "Hoger secundair onderwijs (CESS)",
        "qualification_higher": "Hoger onderwijs",
        "malformed_json": "De inhoud van het verzoek is geen geldige JSON.",
        "malformed_form": "Het verstuurde formulier is onleesbaar. Laad de pagina opnieuw en probeer het nog eens.",
        "too_large": "Uw aanvraag is te lang (maximaal {limit} bytes). Maak de tekst korter en probeer opnieuw.",
        # The form's page says it without bytes: a person counts words, not bytes.
        "form_too_large": "Uw aanvraag is te lang. Maak de tekst korter en probeer opnieuw.",
        "unsupported_media_type": "Inhoudstype niet aanvaard: verstuur {expected}.",
        "rate_limited": "Te veel aanvragen in korte tijd. Probeer het over {seconds} seconden opnieuw.",
        "unavailable": "De dienst is tijdelijk niet beschikbaar en uw aanvraag is niet geregistreerd. "
        "Probeer het over enkele minuten opnieuw.",
        "invalid_idempotency_key": "De header Idempotency-Key moet 1 tot 255 afdrukbare ASCII-tekens bevatten.",
        "idempotency_key_required": "De header Idempotency-Key is verplicht: "
        "zo kan een nieuwe poging geen tweede aanvraag maken.",
        "error_idempotency_key_reused": "Idempotency-Key hergebruikt voor een andere aanvraag.",
        "not_found": "Pagina niet gevonden.",
        "invalid_content_length": "Ongeldige Content-Length-header.",
        "client_disconnected": "De verbinding werd verbroken voor het einde van de verzending.",
        "error_required": "Dit veld is verplicht.",
        "error_contact_required": "Geef een telefoonnummer of een e-mailadres op, zodat we contact met u kunnen opnemen.",
        "error_phone_invalid": "Dit telefoonnummer is ongeldig. Voorbeeld: 0470 12 34 56 of +32 470 12 34 56.",
        "error_email_invalid": "Dit e-mailadres is ongeldig. Voorbeeld: naam@voorbeeld.be.",
        "error_too_long": "Te lang: maximaal {max_length} tekens.",
        "error_name_url": "Vul alleen uw naam in, zonder website-adres of link.",
        "error_name_control_characters": "Deze naam bevat onzichtbare of controletekens: typ hem opnieuw.",
        "captcha_failed": "De controle tegen robots is mislukt: probeer opnieuw.",
        "captcha_unavailable": "De controle tegen robots is nu niet beschikbaar: probeer over een minuut opnieuw.",
        "error_course_unknown": "Onbekende opleiding „{code}”. Geldige codes: {codes}.",
        "error_consent_required": "Vink het vakje aan om akkoord te gaan met contact: zonder uw toestemming "
        "kunnen we uw aanvraag niet behandelen.",
        "error_date_future": "Deze datum ligt in de toekomst.",
        "error_date_too_old": "Deze datum ligt te ver in het verleden.",
        "error_date_invalid": "Geef een geldige datum op (DD/MM/JJJJ).",
        "error_choice_invalid": "Kies uit: {choices}.",
        "error_bool_invalid": "Antwoord ja of nee (true of false).",
        "error_text_expected": "Er wordt tekst verwacht.",
        "error_object_expected": "Er wordt een JSON-object verwacht.",
        "error_partner_invalid": "Ongeldige partnercode (kleine letters, cijfers en koppeltekens).",
        "error_unknown_field": "Onbekend veld.",
        "error_invalid": "Ongeldige waarde.",
    },
    Language.EN: {
        "page_title": "Ask for a training course — Bruxelles Formation",
        "heading": "Ask for a training course",
        "intro": "Looking for an online course or for advice? Leave your contact details and an advisor will get back to you.",
        "language_switch": "Page language",
        "section_contact": "Your contact details",
        "section_request": "Your request",
        "section_situation": "Your situation",
        "contact_hint": "Give a phone number, an e-mail address, or both.",
        "optional": "optional",
        "name": "Full name",
        "phone": "Phone",
        "phone_hint": "For example 0470 12 34 56",
        "email": "E-mail address",
        "email_hint": "For example name@example.be",
        "language": "In which language would you like to be contacted?",
        "need": "What do you need?",
        "learner_question": ("I am already enrolled in a course and have a question about it (answer within one working day)."),
        "need_hint": "In a few words: the course or the help you are looking for.",
        "requested_course": "Course you are interested in",
        "course_unsure": "I don't know / advise me",
        "qualification_level": "Your highest qualification",
        "choose": "— Choose —",
        "has_computer": "Do you have a computer?",
        "has_internet": "Do you have internet at home?",
        "yes": "Yes",
        "no": "No",
        "unemployed_since": "Unemployed since",
        "unemployed_since_hint": "Leave empty if you don't know.",
        "consent_to_contact": "I agree to be contacted by Bruxelles Formation about my request.",
        "privacy": "Your contact details are only used to handle your request.",
        "submit": "Send my request",
        "errors_title": "Your request was not sent. Please correct the following:",
        "confirmation_title": "Thank you, we have received your request",
        "reference": "Your request reference",
        "next_steps": "An advisor will contact you to talk about your request.",
        "next_steps_learner_question": "Our online courses team (BF espaces numériques) "
        "will answer your question within one working day.",
        "keep_reference": "Keep this reference. Give it to us if you call us.",
        "reach_us": reach_us("en"),
        "new_request": "Make another request",
        "back_to_form": "Back to the form",
        "kind_basic_skills": "Basic skills",
        "kind_software_path": "Software (certification paths)",
        "kind_design_path": "Design and drawing (certification paths)",
        "kind_digital_skills": "Digital skills",
        "qualification_none": "No qualification",
        "qualification_primary": "Primary school",
        "qualification_lower_secondary": "Lower secondary",
        "qualification_upper_secondary": "Upper secondary (CESS)",
        "qualification_higher": "Higher education",
        "malformed_json": "The request body is not valid JSON.",
        "malformed_form": "The form could not be read. Reload the page and try again.",
        "too_large": "Your request is too long (at most {limit} bytes). Shorten the text and try again.",
        # The form's page says it without bytes: a person counts words, not bytes.
        "form_too_large": "Your request is too long. Shorten the text and try again.",
        "unsupported_media_type": "Content type not accepted: send {expected}.",
        "rate_limited": "Too many requests in a short time. Try again in {seconds} seconds.",
        "unavailable": "The service is temporarily unavailable and your request was not recorded. "
        "Please try again in a few minutes.",
        "invalid_idempotency_key": "The Idempotency-Key header must hold 1 to 255 printable ASCII characters.",
        "idempotency_key_required": "The Idempotency-Key header is required: it lets a retry never make a second request.",
        "error_idempotency_key_reused": "Idempotency-Key reused with a different request.",
        "not_found": "Page not found.",
        "invalid_content_length": "Invalid Content-Length header.",
        "client_disconnected": "The client disconnected before the end of the body.",
        "error_required": "This field is required.",
        "error_contact_required": "Give a phone number or an e-mail address so that we can contact you.",
        "error_phone_invalid": "This phone number is not valid. Example: 0470 12 34 56 or +32 470 12 34 56.",
        "error_email_invalid": "This e-mail address is not valid. Example: name@example.be.",
        "error_too_long": "Too long: at most {max_length} characters.",
        "error_name_url": "Give only your name, without a website address or link.",
        "error_name_control_characters": "This name contains invisible or control characters: please type it again.",
        "captcha_failed": "The anti-robot check failed: please try again.",
        "captcha_unavailable": "The anti-robot check is unavailable right now: please try again in a minute.",
        "error_course_unknown": "Unknown course \u201c{code}\u201d. Valid codes: {codes}.",
        "error_consent_required": "Tick the box to agree to be contacted: without your consent we cannot handle your request.",
        "error_date_future": "This date is in the future.",
        "error_date_too_old": "This date is too far in the past.",
        "error_date_invalid": "Enter a valid date (DD/MM/YYYY).",
        "error_choice_invalid": "Choose one of: {choices}.",
        "error_bool_invalid": "Answer yes or no (true or false).",
        "error_text_expected": "Text expected.",
        "error_object_expected": "A JSON object expected.",
        "error_partner_invalid": "Invalid partner id (lowercase letters, digits and hyphens).",
        "error_unknown_field": "Unknown field.",
        "error_invalid": "Invalid value.",
    },
}


def text(language: Language, key: str, **params: object) -> str:
    """The text for `key` in `language`, with `{placeholders}` filled from `params`."""
    template = TEXTS[language][key]
    return template.format(**params) if params else template


def qualification_label(language: Language, level: QualificationLevel) -> str:
    return TEXTS[language][f"qualification_{level.value}"]


def negotiate(accept_language: str | None, *, default: Language) -> Language:
    """The supported language the client prefers most, from an `Accept-Language` header.

    `nl-BE,nl;q=0.9,fr;q=0.8` gives `nl`; `de, *;q=0.1` gives `default`; malformed parts are skipped.
    """
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate(_split(accept_language or "")):
        tag, _, params = part.partition(";")
        primary = tag.strip().split("-")[0].lower()
        try:
            language = Language(primary)
        except ValueError:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0 or quality != quality:  # q=0 means "not this one"; NaN is not a preference
            continue
        # Higher quality first, then the earlier position in the header.
        if best is None or (quality, -position) > (best[0], best[1]):
            best = (quality, -position, language)
    return best[2] if best else default


def _split(header: str) -> Iterable[str]:
    return (part for part in header[:500].split(",") if part.strip())
