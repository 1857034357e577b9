//! Random display names for runs and LoggedModels, in MLflow's style: `<adjective>-<noun>-<n>`
//! with `n` in `0..=1000`, at most 20 characters (MLflow's `_generate_random_name`).

const ADJECTIVES: &[&str] = &[
    "able",
    "adaptable",
    "agreeable",
    "amazing",
    "ambitious",
    "amusing",
    "auspicious",
    "awesome",
    "bald",
    "beautiful",
    "bemused",
    "big",
    "blushing",
    "bold",
    "bouncy",
    "brawny",
    "bright",
    "burly",
    "bustling",
    "calm",
    "capable",
    "carefree",
    "caring",
    "casual",
    "charming",
    "chill",
    "classy",
    "clean",
    "clever",
    "colorful",
    "crawling",
    "dapper",
    "dashing",
    "debonair",
    "delicate",
    "delightful",
    "dazzling",
    "defiant",
    "efficient",
    "enchanting",
    "entertaining",
    "enthused",
    "exultant",
    "fearless",
    "flawless",
    "fortunate",
    "fun",
    "funny",
    "gaudy",
    "gentle",
    "gifted",
    "glamorous",
    "grandiose",
    "gregarious",
    "handsome",
    "hilarious",
    "honorable",
    "illustrious",
    "incongruous",
    "indecisive",
    "industrious",
    "intelligent",
    "inquisitive",
    "intrigued",
    "invincible",
    "judicious",
    "kindly",
    "languid",
    "learned",
    "legendary",
    "likeable",
    "loud",
    "luminous",
    "luxuriant",
    "lyrical",
    "magnificent",
    "marvelous",
    "masked",
    "melodic",
    "merciful",
    "mercurial",
    "monumental",
    "mysterious",
    "nebulous",
    "nervous",
    "nimble",
    "nosy",
    "omniscient",
    "orderly",
    "overjoyed",
    "peaceful",
    "painted",
    "persistent",
    "placid",
    "polite",
    "popular",
    "powerful",
    "puzzled",
    "rambunctious",
    "rare",
    "rebellious",
    "respected",
    "resilient",
    "righteous",
    "receptive",
    "redolent",
    "rogue",
    "rumbling",
    "salty",
    "sassy",
    "secretive",
    "selective",
    "sedate",
    "serious",
    "shivering",
    "skillful",
    "sincere",
    "skittish",
    "silent",
    "smiling",
    "sneaky",
    "sophisticated",
    "spiffy",
    "stately",
    "suave",
    "stylish",
    "tasteful",
    "thoughtful",
    "thundering",
    "traveling",
    "treasured",
    "trusting",
    "unequaled",
    "upbeat",
    "unique",
    "unleashed",
    "useful",
    "upset",
    "valuable",
    "vaunted",
    "victorious",
    "welcoming",
    "whimsical",
    "wistful",
    "wise",
    "worried",
    "youthful",
    "zealous",
];

const NOUNS: &[&str] = &[
    "ant", "ape", "asp", "auk", "bass", "bat", "bear", "bee", "bird", "boar", "bug", "calf",
    "carp", "cat", "chimp", "cod", "colt", "conch", "cow", "crab", "crane", "croc", "crow", "cub",
    "deer", "doe", "dog", "dolphin", "donkey", "dove", "duck", "eel", "elk", "fawn", "finch",
    "fish", "flea", "fly", "foal", "fowl", "fox", "frog", "gnat", "gnu", "goat", "goose", "grouse",
    "grub", "gull", "hare", "hawk", "hen", "hog", "horse", "hound", "jay", "kit", "kite", "koi",
    "lamb", "lark", "loon", "lynx", "mare", "midge", "mink", "mole", "moose", "moth", "mouse",
    "mule", "newt", "owl", "ox", "panda", "penguin", "perch", "pig", "pug", "quail", "ram", "rat",
    "ray", "robin", "roo", "rook", "seal", "shad", "shark", "sheep", "shoat", "shrew", "shrike",
    "shrimp", "skink", "skunk", "sloth", "slug", "smelt", "snail", "snake", "snipe", "sow",
    "sponge", "squid", "squirrel", "stag", "steed", "stoat", "stork", "swan", "tern", "toad",
    "trout", "turtle", "vole", "wasp", "whale", "wolf", "worm", "wren", "yak", "zebra",
];

/// The longest generated name, as in MLflow.
pub const MAX_GENERATED_NAME_LENGTH: usize = 20;

/// A random name such as `bold-ant-123`, at most [`MAX_GENERATED_NAME_LENGTH`] characters.
pub fn generate_random_name() -> String {
    loop {
        let bytes = *uuid::Uuid::new_v4().as_bytes();
        let pick =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let adjective = ADJECTIVES[pick(0) as usize % ADJECTIVES.len()];
        let noun = NOUNS[pick(4) as usize % NOUNS.len()];
        let number = pick(8) % 1001;
        let name = format!("{adjective}-{noun}-{number}");
        if name.len() <= MAX_GENERATED_NAME_LENGTH {
            return name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_mlflow_shape() {
        for _ in 0..500 {
            let name = generate_random_name();
            assert!(name.len() <= MAX_GENERATED_NAME_LENGTH, "{name}");
            let parts: Vec<&str> = name.split('-').collect();
            assert_eq!(parts.len(), 3, "{name}");
            assert!(ADJECTIVES.contains(&parts[0]));
            assert!(NOUNS.contains(&parts[1]));
            assert!(parts[2].parse::<u32>().unwrap() <= 1000);
        }
    }
}
