// config.json: the LLaVA, the CLIP and the SigLIP vision parser on the same text (model/config.c), and a
// successful parse must give sizes inside the ceilings (what later allocations trust).
#include "fuzz.h"

#include "../../model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_cstr(data, size);
    FUZZ_BEGIN
        LlavaConfig c;
        llava_config_parse_len(&c, text, size, "config.json");
        if (c.text.layers < 1 || c.text.layers > 1024 || c.vision.hidden < 1 || c.image_tokens < 1 || c.image_token_id < 0 ||
            c.image_token_id >= c.text.vocab || c.vision_layers_run < 0 || c.vision_layers_run > c.vision.layers)
            abort();
    FUZZ_END
    FUZZ_BEGIN
        ClipConfig c;
        clip_config_parse_len(&c, text, size, "config.json");
        if (c.text.max_positions < 1 || c.text.eos_token_id < 0 || c.text.eos_token_id >= c.text.vocab) abort();
    FUZZ_END
    FUZZ_BEGIN
        VisionConfig c;
        siglip_vision_config_parse_len(&c, text, size, "config.json");
        if (c.kind != VISION_SIGLIP || c.patch_size < 1 || c.patch_size > c.image_size || vision_config_tokens(&c) < 1) abort();
    FUZZ_END
    free(text);
    return 0;
}
