#include "text.h"

#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

void words_init(Words *ws) { memset(ws, 0, sizeof(*ws)); }

void words_free(Words *ws) {
    for (int i = 0; i < ws->n; i++) free(ws->w[i]);
    free(ws->w);
    memset(ws, 0, sizeof(*ws));
}

void words_push(Words *ws, const char *s, size_t len) {
    if (ws->n == ws->cap) ws->w = xrealloc(ws->w, sizeof(char *) * (size_t)(ws->cap = ws->cap ? 2 * ws->cap : 16));
    char *w = xmalloc(len + 1);
    memcpy(w, s, len);
    w[len] = 0;
    ws->w[ws->n++] = w;
}

void text_lower(char *s) {
    for (; *s; s++) if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

static int is_word_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

// Appends the words of s to out, lowercased when lower.
static void split_words(const char *s, Words *out, int lower) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (!is_word_char(*p)) { p++; continue; }
        const unsigned char *start = p;
        while (is_word_char(*p) || (*p == '-' && p > start && is_word_char(p[1]))) p++;
        size_t len = (size_t)(p - start);
        words_push(out, (const char *)start, len);
        if (lower) text_lower(out->w[out->n - 1]);
    }
}

void text_words(const char *s, Words *out) { split_words(s, out, 1); }
void text_tokens(const char *s, Words *out) { split_words(s, out, 0); }

// ---- singularizer ----------------------------------------------------------------------------------

static int ends_with(const char *w, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && !memcmp(w + n - k, suffix, k);
}

static int in_list(const char *w, const char *const *list) {
    for (; *list; list++) if (!strcmp(w, *list)) return 1;
    return 0;
}

// w[0..keep) + add, as a fresh string.
static char *stem_plus(const char *w, size_t keep, const char *add) {
    size_t k = strlen(add);
    char *s = xmalloc(keep + k + 1);
    memcpy(s, w, keep);
    memcpy(s + keep, add, k + 1);
    return s;
}

// Words ending in s that are not plurals (or whose plural is the same word).
static const char *const invariant[] = {
    "is", "as", "us", "was", "has", "his", "its", "yes", "this", "thus", "plus", "does", "gas", "bus", "always",
    "perhaps", "towards", "afterwards", "backwards", "forwards", "upwards", "downwards", "sometimes", "besides",
    "whereas", "news", "series", "species", "means", "lens", "bias", "alias", "canvas", "atlas", "christmas",
    "chaos", "cosmos", "pants", "jeans", "shorts", "trousers", "scissors", "pajamas", "pyjamas", "binoculars",
    "pliers", "tongs", "clothes", "sunglasses", "eyeglasses", "goggles", "headquarters", "physics",
    "mathematics", "athletics", "gymnastics", "electronics", "politics", "economics", "billiards", "overalls",
    "lacrosse", "diabetes", "measles", "mumps", "herpes", "rabies", "shambles", "various", "texas", "vegas",
    NULL};

// Whole-word irregular plurals.
static const char *const irregular[][2] = {
    {"people", "person"}, {"men", "man"}, {"women", "woman"}, {"children", "child"}, {"mice", "mouse"},
    {"lice", "louse"}, {"geese", "goose"}, {"feet", "foot"}, {"teeth", "tooth"}, {"oxen", "ox"},
    {"lives", "life"}, {"leaves", "leaf"}, {"loaves", "loaf"}, {"sheaves", "sheaf"}, {"thieves", "thief"},
    {"hooves", "hoof"}, {"rooves", "roof"}, {"scarves", "scarf"}, {"wharves", "wharf"}, {"dwarves", "dwarf"},
    {"cacti", "cactus"}, {"fungi", "fungus"}, {"octopi", "octopus"}, {"dice", "die"}, {"gases", "gas"},
    {"lenses", "lens"}, {"canvases", "canvas"}, {"atlases", "atlas"}, {"irises", "iris"},
    {"octopuses", "octopus"}, {"cactuses", "cactus"}, {"walruses", "walrus"}, {"campuses", "campus"},
    {"viruses", "virus"}, {"bonuses", "bonus"}, {"circuses", "circus"}, {"platypuses", "platypus"},
    {"hippopotamuses", "hippopotamus"}, {"choruses", "chorus"}, {"citruses", "citrus"}, {"quizzes", "quiz"},
    {"goes", "go"}, {"menus", "menu"}, {"emus", "emu"}, {"gnus", "gnu"}, {"gurus", "guru"}, {"zebus", "zebu"},
    {"tutus", "tutu"}, {"haikus", "haiku"}, {"tofus", "tofu"}, {"bayous", "bayou"}, {"caribous", "caribou"},
    {"sudokus", "sudoku"}, {"skis", "ski"}, {"bowties", "bowtie"}, {"neckties", "necktie"},
    {"magpies", "magpie"}, {"potpies", "potpie"}, {"corgis", "corgi"},
};

// Irregular endings of compounds (townspeople, grandchildren, policemen, pocketknives, minibuses).
static const char *const irregular_tail[][2] = {
    {"people", "person"}, {"children", "child"}, {"women", "woman"}, {"men", "man"}, {"knives", "knife"},
    {"wives", "wife"}, {"buses", "bus"},
};
// Singular words ending in -men.
static const char *const men_singular[] = {
    "specimen", "omen", "abdomen", "stamen", "semen", "regimen", "ramen", "amen", "hymen", "yemen", "acumen",
    "examen", "albumen", "bitumen", "cyclamen", "germen", "lumen", "rumen", NULL};

// Nouns in -ie whose plural -ies must not become -y.
static const char *const ie_nouns[] = {
    "movies", "cookies", "brownies", "zombies", "rookies", "selfies", "calories", "goalies", "smoothies",
    "hoodies", "collies", "doggies", "birdies", "veggies", "pixies", "prairies", "hippies", "budgies",
    "beanies", "genies", "oldies", "sweeties", "newbies", "aussies", "boogies", "junkies", "cutesies",
    "lassies", "nighties", "undies", "walkies", "talkies", "eyries", "bookies", "coolies", "yuppies",
    "groupies", "hotties", "kiddies", "techies", "pinkies", "quickies", "indies", "foodies",
    "cabbies", "besties", "freebies", "stymies", "laddies", "girlies", NULL};

// Nouns in -che (plural -ches drops only the s).
static const char *const che_nouns[] = {
    "niches", "caches", "moustaches", "mustaches", "headaches", "toothaches", "stomachaches", "backaches",
    "earaches", "heartaches", "avalanches", "quiches", "cliches", "psyches", "creches", "microfiches",
    "cloches", "brioches", "panaches", "attaches", NULL};

// Nouns in -o whose plural is -oes.
static const char *const oes_nouns[] = {
    "tomatoes", "potatoes", "heroes", "mangoes", "volcanoes", "echoes", "torpedoes", "mosquitoes",
    "buffaloes", "dominoes", "tornadoes", "avocadoes", "vetoes", "embargoes", "mottoes", "cargoes",
    "haloes", "tuxedoes", "flamingoes", "mementoes", "porticoes", "innuendoes", "grottoes", NULL};

// Singular words in -is (besides -sis, -itis and -polis).
static const char *const is_singular[] = {
    "tennis", "iris", "axis", "pelvis", "penis", "chassis", "trellis", "ibis", "mantis", "debris", "cannabis",
    "clitoris", "epidermis", "dermis", "proboscis", "paris", "dennis", "elvis", "lewis", "chris", "otis",
    "morris", "travis", "louis", "hubris", "amaryllis", "clematis", "pastis", "glottis", "testis", "cutis",
    "pubis", "aegis", "marquis", "tapis", "kumis", "syphilis", "ambergris", "verdigris", "borealis", NULL};

// Plurals in -us (otherwise -us words are singular).
static int us_plural(const char *w) {
    static const char *const list[] = {"menus", "emus", "gnus", "gurus", "zebus", "tutus", "haikus", "tofus",
                                       "bayous", "caribous", "sudokus", "tiramisus", "kudzus", "snafus", "jujus",
                                       "zulus", "hindus", "tabus", "tatus", NULL};
    return in_list(w, list);
}

char *text_singular(const char *w) {
    size_t n = strlen(w);
    if (n < 3) return xstrdup(w);
    if (in_list(w, invariant)) return xstrdup(w);
    for (size_t i = 0; i < sizeof(irregular) / sizeof(irregular[0]); i++)
        if (!strcmp(w, irregular[i][0])) return xstrdup(irregular[i][1]);
    for (size_t i = 0; i < sizeof(irregular_tail) / sizeof(irregular_tail[0]); i++) {
        const char *pl = irregular_tail[i][0];
        if (!ends_with(w, n, pl)) continue;
        if (!strcmp(pl, "men") && (in_list(w, men_singular) || ends_with(w, n, "women"))) continue;
        return stem_plus(w, n - strlen(pl), irregular_tail[i][1]);
    }
    if (w[n - 1] != 's') return xstrdup(w);  // the irregulars above are the only plurals not ending in s

    if (ends_with(w, n, "ies")) {
        if (n == 4 || in_list(w, ie_nouns)) return stem_plus(w, n - 1, "");
        return stem_plus(w, n - 3, "y");
    }
    if (ends_with(w, n, "ves")) {
        if (ends_with(w, n, "lves") && !(ends_with(w, n, "olves") && !ends_with(w, n, "wolves")) &&
            strcmp(w, "valves") && strcmp(w, "salves"))
            return stem_plus(w, n - 3, "f");
        return stem_plus(w, n - 1, "");
    }
    if (ends_with(w, n, "es")) {
        if (ends_with(w, n, "sses") || ends_with(w, n, "shes") || ends_with(w, n, "xes") || ends_with(w, n, "zzes"))
            return stem_plus(w, n - 2, "");
        if (ends_with(w, n, "ches")) return stem_plus(w, in_list(w, che_nouns) ? n - 1 : n - 2, "");
        if (ends_with(w, n, "oes")) return stem_plus(w, in_list(w, oes_nouns) ? n - 2 : n - 1, "");
        return stem_plus(w, n - 1, "");  // horses, vases, prizes, plates, bikes
    }
    if (ends_with(w, n, "ss")) return xstrdup(w);
    if (ends_with(w, n, "us")) return us_plural(w) ? stem_plus(w, n - 1, "") : xstrdup(w);
    if (ends_with(w, n, "is")) {
        int singular = in_list(w, is_singular) || ends_with(w, n, "sis") || ends_with(w, n, "itis") ||
                       ends_with(w, n, "polis");
        return singular ? xstrdup(w) : stem_plus(w, n - 1, "");
    }
    return stem_plus(w, n - 1, "");
}
