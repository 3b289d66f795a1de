"""Fixed word lists for synthetic people, providers and medications.

Every person wcperf seeds is a random pairing of these words; none is real.
No entry may contain a tab, newline or backslash (COPY text format).
"""

FIRST_NAMES = (
    "Aiden Alba Alden Alma Amari Ansel Arden Ari Arlo Ash Aster Aubrey Avery Bay Bellamy "
    "Blair Blake Bowen Brady Briar Brook Cade Callan Cam Carey Carson Cedar Celeste Channing "
    "Clay Cleo Cody Corin Cove Dale Dallas Darcy Darian Dell Devon Drew Eden Elian Ellis "
    "Ember Emery Emory Ennis Ezra Fallon Fen Finley Flynn Gale Garnet Glen Gray Greer Hadley "
    "Harlow Haven Hollis Indigo Ira Isa Jade Jalen Jody Jules Juniper Kai Keaton Kendall Kit "
    "Lake Lane Lark Laurel Lee Lennox Linden Lior Loren Lowen Lyric Mace Marlo Merritt Milo "
    "Morgan Nico Noel Oakley Onyx Orion Palmer Parker Paz Perry Phoenix Piper Quill Quinn Rain "
    "Ravi Reese Remy Rio Robin Rowan Rue Rylan Sage Sasha Scout Shay Shiloh Sky Sol Sterling "
    "Story Sutton Tatum Teagan Tobin Tory Tristan True Vale Vesper Wren Wynn Yael Zion Zuri"
).split()

LAST_NAMES = (
    "Abbott Ainsley Alder Ashby Bannister Barlow Beckett Birch Blackwood Bramble Briggs "
    "Calloway Carrow Castell Chadwick Colby Corbin Crane Dalton Darrow Delacroix Drummond "
    "Eastwood Elwood Emberly Everhart Fairbanks Falcon Farrow Fenwick Fletcher Forsythe Galloway "
    "Garrick Gideon Glover Greaves Hale Halloway Harlan Hartwell Hawthorne Holloway Hyde "
    "Ingram Ives Jarvis Kearney Kingsley Kirkwood Langley Larkin Lockhart Lowell Maddox Marlowe "
    "Merriweather Mercer Moreland Norwood Oakes Orwell Pembrook Pendleton Prescott Quimby "
    "Radcliffe Ramsey Ravenscroft Redford Rowntree Sallow Sawyer Sheridan Stanhope Stirling "
    "Strand Sutherland Talbot Thorne Tillman Underwood Vance Wakefield Walcott Westbrook "
    "Whitlock Wilder Winslow Wolcott Yardley Yates Zeller"
).split()

RELATIONSHIPS = ("mother", "father", "guardian", "grandparent", "aunt", "uncle", "sibling")

RECORD_TYPES = (
    "checkup", "vaccination", "screening", "illness", "injury", "allergy",
    "medication_administration", "vision", "hearing", "dental",
)

DIAGNOSIS_CODES = (
    "J06.9 J02.9 J45.909 J30.9 R51.9 R50.9 K52.9 H10.9 H66.90 L20.9 L23.9 T78.40XA S93.401A "
    "S60.00XA S09.90XA R11.10 R10.9 F41.9 F90.9 E10.9 G43.909 B35.4 B86 Z00.129 Z23 Z01.00 "
    "Z01.10 Z13.0 N39.0 R05.9"
).split()

NOTE_PHRASES = (
    "Seen in clinic; resting before return to class.",
    "Parent contacted by phone; agreed to pick up.",
    "Ice applied; no further complaint.",
    "Temperature checked and recorded.",
    "Routine screening completed; results on file.",
    "Follow-up scheduled with family physician.",
    "Medication given per standing order.",
    "Vaccination record updated from provider form.",
    "Student returned to class after observation.",
    "Referred to counselor for follow-up.",
)

PROVIDER_WORDS = (
    "Maple Cedar Riverside Lakeview Summit Valley Harbor Northgate Brookside Pinecrest Hillcrest "
    "Meadow Oakridge Westfield Eastside Fairview Greenway Stonebridge Clearwater Highland"
).split()
PROVIDER_KINDS = ("Pediatrics", "Family Clinic", "Health Center", "Urgent Care", "Medical Group")

APPOINTMENT_TYPES = (
    "checkup", "screening", "medication", "illness", "injury", "follow_up", "counseling",
)

MEDICATIONS = (
    ("Acetaminophen", False, None), ("Ibuprofen", False, None), ("Amoxicillin", False, None),
    ("Albuterol", False, None), ("Cetirizine", False, None), ("Loratadine", False, None),
    ("Diphenhydramine", False, None), ("Epinephrine", False, None), ("Fluticasone", False, None),
    ("Montelukast", False, None), ("Insulin lispro", False, None), ("Insulin glargine", False, None),
    ("Glucagon", False, None), ("Ondansetron", False, None), ("Famotidine", False, None),
    ("Azithromycin", False, None), ("Cephalexin", False, None), ("Prednisolone", False, None),
    ("Hydrocortisone", False, None), ("Mupirocin", False, None), ("Levetiracetam", False, None),
    ("Lamotrigine", False, None), ("Sertraline", False, None), ("Fluoxetine", False, None),
    ("Guanfacine", False, None), ("Clonidine", False, None), ("Melatonin", False, None),
    ("Methylphenidate", True, "II"), ("Dextroamphetamine", True, "II"),
    ("Lisdexamfetamine", True, "II"), ("Amphetamine salts", True, "II"),
    ("Diazepam", True, "IV"), ("Midazolam", True, "IV"), ("Clobazam", True, "IV"),
    ("Lorazepam", True, "IV"), ("Codeine-guaifenesin", True, "V"), ("Pregabalin", True, "V"),
    ("Testosterone", True, "III"), ("Ketamine", True, "III"), ("Modafinil", True, "IV"),
)
DOSAGE_FORMS = (
    "tablet", "capsule", "chewable", "liquid", "inhaler", "injection", "auto-injector", "cream",
    "drops", "patch",
)
STRENGTHS = ("5 mg", "10 mg", "25 mg", "50 mg", "100 mg", "250 mg", "500 mg", "2 mg/mL")
