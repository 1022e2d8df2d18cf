"""Reference generators that make training and validation data (Angantyr; TRENTo + hydro + Cooper-Frye)."""
